"""controllers/metrics"""
