"""daninet_pipeline.reports"""
