"""daninet_pipeline.interfaces"""
