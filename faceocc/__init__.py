"""faceocc: face occlusion analysis (plain / masked / sunglasses / mask+sunglasses)."""

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")
