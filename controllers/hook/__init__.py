"""controllers/hook"""
