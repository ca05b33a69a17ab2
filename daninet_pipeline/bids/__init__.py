"""daninet_pipeline.bids"""
