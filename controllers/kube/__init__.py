"""controllers/kube"""
