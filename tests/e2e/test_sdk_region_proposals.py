"""End to end: the official SDK's get_image_region_proposals against the running local host on real Azurite,
on a composed scene stored as a JPEG whose pixels are turned and whose EXIF orientation turns them back."""

import io

import numpy as np
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from cvcore import boxes as boxops
from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import scenes
from tests.support.localhost import running_host

pytestmark = pytest.mark.e2e
DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


@pytest.fixture(scope="module")
def trainer(azurite):
    with running_host(azurite) as url:
        yield CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )


def turned_jpeg(image: Image.Image) -> bytes:
    """JPEG of `image` turned a quarter anticlockwise, with EXIF orientation 6 (turn clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def test_region_proposals_through_the_sdk(trainer):
    project = trainer.create_project(f"proposals-{layout.new_id()[:8]}", domain_id=DETECTION)
    try:
        scene = scenes.scene(501, size=(320, 240))
        image_id = trainer.create_images_from_data(project.id, turned_jpeg(scene.image)).images[0].image.id
        got = trainer.get_image_region_proposals(project.id, image_id)
        assert got.project_id == project.id and got.image_id == image_id
        conf = [p.confidence for p in got.proposals]
        assert 0 < len(conf) <= 50 and conf == sorted(conf, reverse=True)
        b = np.array(
            [
                [p.bounding_box.left, p.bounding_box.top, p.bounding_box.width, p.bounding_box.height]
                for p in got.proposals
            ]
        )
        assert (
            (b >= 0).all() and (b[:, 0] + b[:, 2] <= 1 + 1e-9).all() and (b[:, 1] + b[:, 3] <= 1 + 1e-9).all()
        )
        # boxes are in the upright image's frame: each object of the scene is found
        assert (boxops.iou([x[1:] for x in scene.boxes], b).max(1) >= 0.5).all()
        with pytest.raises(CustomVisionErrorException) as err:
            trainer.get_image_region_proposals(project.id, layout.new_id())
        assert err.value.error.code == "NotFoundImage"
    finally:
        trainer.delete_project(project.id)
