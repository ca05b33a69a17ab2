"""daninet_pipeline.workflows"""
