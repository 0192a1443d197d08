"""(role described when this component is built)"""
