"""controllers/api"""
