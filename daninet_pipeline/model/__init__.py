"""daninet_pipeline.model"""
