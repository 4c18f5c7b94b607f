"""faceocc: face occlusion analysis (plain / masked / sunglasses / mask+sunglasses).

    from faceocc import FacePredictor
    predictor = FacePredictor.open()              # the released model, with the finder it was trained with
    faces = predictor.predict("photo.jpg")        # [{"label", "scores", "box", "landmarks", ...}, ...]
"""

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")
__all__ = ["CLASSES", "FacePredictor"]


def __getattr__(name: str):
    # loaded on first use: `import faceocc.<module>` (every stage does) must not pull in torch and the detectors
    if name == "FacePredictor":
        from faceocc.inference import FacePredictor

        return FacePredictor
    raise AttributeError(f"module 'faceocc' has no attribute {name!r}")
