"""The local Argo executor (`mlops run`) and the local EventSource and Sensor (`mlops events serve`)."""
