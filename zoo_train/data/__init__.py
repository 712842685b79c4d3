"""zoo_train/data"""
