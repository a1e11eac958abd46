"""Framework adapters: ``crossrank.adapters.llama_index``, ``.langchain`` and ``.haystack``.

Each adapter module imports its framework only when it is imported itself; ``import
crossrank`` never imports any framework.
"""
