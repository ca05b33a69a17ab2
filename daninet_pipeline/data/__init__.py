"""daninet_pipeline.data"""
