"""One module per DVC stage; dvc.yaml runs each as `python -m stages.<name>`."""
