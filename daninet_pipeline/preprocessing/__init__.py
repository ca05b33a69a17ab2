"""daninet_pipeline.preprocessing"""
