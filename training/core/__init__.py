"""The training core: R-PRM SFT and DPO data and TRL runners. Plain Python, no Django.

``data`` builds TRL rows, the DPO pair rule and data-driven sequence lengths;
``runner`` trains with TRL's SFTTrainer / DPOTrainer (imported lazily, so the data
helpers work without torch).
"""
