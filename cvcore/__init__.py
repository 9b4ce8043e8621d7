"""Contracts shared by the Functions app and the trainer.

One definition each: storage layout (`layout`), settings (`settings`), storage clients (`storage`),
image checks (`imaging`), and the error vocabulary (`errors`). Nothing here imports torch.
"""
