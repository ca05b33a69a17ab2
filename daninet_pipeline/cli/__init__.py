"""daninet_pipeline.cli"""
