"""zoo_train"""
