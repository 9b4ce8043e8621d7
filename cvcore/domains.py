"""The domain catalogue: Custom Vision's domain ids (so scripts that hard-code them keep working), each
mapped to the backbone the trainer uses for it. Compact domains are the exportable ones."""

from __future__ import annotations

from dataclasses import dataclass

from . import artifacts, exports

CLASSIFICATION = "Classification"
OBJECT_DETECTION = "ObjectDetection"

DEFAULT_BACKBONE = "mobilenet_v2"
EXPORT_PLATFORMS = exports.platforms()  # what an exportable domain can be exported to


@dataclass(frozen=True)
class Domain:
    id: str
    name: str
    type: str
    compact: bool
    backbone: str
    description: str

    @property
    def exportable(self) -> bool:
        return self.compact

    @property
    def export_platforms(self) -> tuple[str, ...]:
        """What a model of this domain exports to (exportablePlatforms / exportableTo)."""
        if not self.exportable:
            return ()
        return exports.platforms(
            artifacts.DETECTION if self.type == OBJECT_DETECTION else artifacts.CLASSIFICATION
        )


_C, _D = CLASSIFICATION, OBJECT_DETECTION
DOMAINS: tuple[Domain, ...] = (
    Domain(
        "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
        "General",
        _C,
        False,
        DEFAULT_BACKBONE,
        "A broad range of image classification tasks.",
    ),
    Domain(
        "c151d5b5-dd07-472a-acc8-15d29dea8518",
        "Food",
        _C,
        False,
        "efficientnet_lite0",
        "Photographs of dishes and individual fruits or vegetables.",
    ),
    Domain(
        "ca455789-012d-4b50-9fec-5bb63841c793",
        "Landmarks",
        _C,
        False,
        "efficientnet_lite0",
        "Recognizable landmarks, both natural and artificial.",
    ),
    Domain(
        "b30a91ae-e3c1-4f73-a81e-c270bff27c39",
        "Retail",
        _C,
        False,
        "efficientnet_lite0",
        "Images found in a shopping catalogue or on a shopping website.",
    ),
    Domain(
        "0732100f-1a38-4e49-a514-c9b44c697ab5",
        "General (compact)",
        _C,
        True,
        DEFAULT_BACKBONE,
        "General classification, exportable to run on edge devices.",
    ),
    Domain(
        "8882951b-82cd-4c32-970b-d5f8cb8bf6d7",
        "Food (compact)",
        _C,
        True,
        DEFAULT_BACKBONE,
        "Food classification, exportable to run on edge devices.",
    ),
    Domain(
        "b5cfd229-2ac7-4b2b-8d0a-2b0661344894",
        "Landmarks (compact)",
        _C,
        True,
        DEFAULT_BACKBONE,
        "Landmark classification, exportable to run on edge devices.",
    ),
    Domain(
        "6b4faeda-8396-481b-9f8b-177b9fa3097f",
        "Retail (compact)",
        _C,
        True,
        DEFAULT_BACKBONE,
        "Retail classification, exportable to run on edge devices.",
    ),
    Domain(
        "da2e3a8a-40a5-4171-82f4-58522f70fbc1",
        "General",
        _D,
        False,
        DEFAULT_BACKBONE,
        "A broad range of object detection tasks.",
    ),
    Domain(
        "a27d5ca5-bb19-49d8-a70a-fec086c47f5b",
        "General (compact)",
        _D,
        True,
        DEFAULT_BACKBONE,
        "General object detection, exportable to run on edge devices.",
    ),
)
_BY_ID = {d.id: d for d in DOMAINS}
DEFAULT_CLASSIFICATION = DOMAINS[0]


def get(domain_id: str) -> Domain | None:
    return _BY_ID.get(str(domain_id).lower())
