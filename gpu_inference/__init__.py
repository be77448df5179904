"""Training and inference for Tokenmill's models.

Kept free of Django and of the platform's packages so that it can run in a GPU worker
on its own. torch, transformers and peft are imported inside functions: importing a
module of this package stays cheap for processes that only validate files.
"""
