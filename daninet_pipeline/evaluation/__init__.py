"""daninet_pipeline.evaluation"""
