"""Domain records -> Custom Vision JSON (field names exactly as the SDK's models read them)."""

from __future__ import annotations

from collections.abc import Callable

from cvcore import domains, layout

from ..domain.records import ImageRecord, Project, Region, Tag, iso

UrlFor = Callable[[str, str], str]


def domain_json(d: domains.Domain) -> dict:
    return {
        "id": d.id,
        "name": d.name,
        "type": d.type,
        "exportable": d.exportable,
        "enabled": True,
        "exportablePlatforms": list(d.export_platforms),
        "modelInformation": {"description": d.description, "estimatedModelSizeInMegabytes": 14},
    }


def project_json(p: Project) -> dict:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "settings": {
            "domainId": p.domain_id,
            "classificationType": p.classification_type,
            "targetExportPlatforms": p.target_export_platforms,
            "useNegativeSet": p.use_negative_set,
            "imageProcessingSettings": {"augmentationMethods": p.augmentation_methods},
            "exportModelContainerUri": p.export_model_container_uri or None,
            "notificationQueueUri": p.notification_queue_uri or None,
            "webhookUri": p.webhook_uri or None,
            "webhookSecretSet": bool(p.webhook_secret),
        },
        "created": iso(p.created),
        "lastModified": iso(p.last_modified),
        "thumbnailUri": None,
        "drModeEnabled": False,
        "status": p.status,
        **({"statusMessage": p.status_message} if p.status_message else {}),
    }


def tag_json(t: Tag, image_count: int) -> dict:
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "type": t.type,
        "imageCount": image_count,
    }


def region_json(r: Region, tags: dict[str, Tag]) -> dict:
    tag = tags.get(r.tag_id)
    return {
        "regionId": r.id,
        "tagId": r.tag_id,
        "tagName": tag.name if tag else None,
        "created": iso(r.created),
        "left": r.left,
        "top": r.top,
        "width": r.width,
        "height": r.height,
    }


def image_json(project_id: str, im: ImageRecord, tags: dict[str, Tag], url_for: UrlFor) -> dict:
    original = url_for(layout.IMAGES, layout.image_original(project_id, im.id))
    image_tags = dict(im.tags)
    for r in im.regions:  # a region tags its image too
        image_tags.setdefault(r.tag_id, r.created)
    return {
        "id": im.id,
        "created": iso(im.created),
        "width": im.width,
        "height": im.height,
        "resizedImageUri": original,
        "originalImageUri": original,
        "thumbnailUri": url_for(layout.IMAGES, layout.image_thumbnail(project_id, im.id)),
        "tags": [
            {"tagId": tid, "tagName": tags[tid].name if tid in tags else None, "created": iso(when)}
            for tid, when in sorted(image_tags.items(), key=lambda kv: kv[1])
        ],
        "regions": [region_json(r, tags) for r in im.regions] or None,
        "metadata": im.metadata or None,
    }


def iteration_json(project_id: str, it) -> dict:
    details = None
    if it.error_code:
        details = f"{it.error_code}: {it.error_message or ''}".strip()
        if it.error_image_ids:
            details += f" (images: {', '.join(it.error_image_ids[:20])})"
    elif it.skipped_image_ids:
        details = f"skipped unreadable images: {', '.join(it.skipped_image_ids[:20])}"
    return {
        "id": it.id,
        "name": it.name,
        "status": it.status,
        "created": iso(it.created),
        "lastModified": iso(it.last_modified),
        "trainedAt": iso(it.trained_at) if it.trained_at else None,
        "projectId": project_id,
        "exportable": it.exportable,
        "exportableTo": list((domains.get(it.domain_id) or domains.DEFAULT_CLASSIFICATION).export_platforms)
        if it.exportable
        else [],
        "domainId": it.domain_id,
        "classificationType": it.classification_type,
        "trainingType": it.training_type,
        "reservedBudgetInHours": it.reserved_budget_hours,
        "trainingTimeInMinutes": int(round((it.training_seconds or 0) / 60)),
        "publishName": it.publish_name,
        "originalPublishResourceId": it.prediction_resource_id,
        "trainingErrorDetails": details,
        **(
            {
                "notificationEmail": {
                    "address": it.notification_email,
                    "status": it.notification_status,
                    "detail": it.notification_detail or None,
                }
            }
            if it.notification_email
            else {}
        ),
    }
