import pytest

from cvcore import layout, settings


def test_local_storage_gets_documented_default_keys():
    s = settings.load({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert s.is_local
    assert s.training_key == settings.LOCAL_TRAINING_KEY
    assert s.prediction_key == settings.LOCAL_PREDICTION_KEY
    assert s.storage.endpoints["blob"] == "http://127.0.0.1:10000/devstoreaccount1"


def test_default_key_is_refused_outside_local_development():
    env = {
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "CUSTOMVISION_TRAINING_KEY": settings.LOCAL_TRAINING_KEY,
    }
    with pytest.raises(settings.ConfigError) as err:
        settings.load(env)
    assert "CUSTOMVISION_TRAINING_KEY is the local default key" in str(err.value)
    assert "CUSTOMVISION_PREDICTION_KEY is not set" in str(err.value)


def test_identity_based_storage_with_real_keys_loads():
    env = {
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net/",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "abc",
        "CUSTOMVISION_TRAINING_KEY": "s3cret-training",
        "CUSTOMVISION_PREDICTION_KEY": "s3cret-predict",
    }
    s = settings.load(env)
    assert not s.is_local
    assert s.storage.endpoints["blob"] == "https://acct.blob.core.windows.net"
    assert s.storage.client_id == "abc"


def test_missing_storage_is_named():
    with pytest.raises(settings.ConfigError, match="AzureWebJobsStorage"):
        settings.load({})


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "123", "00000000-0000-0000-0000-00000000000g"])
def test_ids_in_paths_must_be_guids(bad):
    with pytest.raises(ValueError, match="imageId"):
        layout.image_original("6f6b2b52-9d0e-4f0c-9a8e-3c1f4d2b7a10", bad)


def test_image_ids_are_content_addressed_per_project():
    p1, p2 = layout.new_id(), layout.new_id()
    assert layout.image_id_for(p1, "ab" * 32) == layout.image_id_for(p1, "ab" * 32)
    assert layout.image_id_for(p1, "ab" * 32) != layout.image_id_for(p2, "ab" * 32)
    assert layout.image_id_for(p1, "ab" * 32) != layout.image_id_for(p1, "cd" * 32)


def test_quick_cpu_budget_is_optional_and_checked():
    from cvcore import settings

    assert settings.quick_cpu_seconds(45.0, {}) == 45.0
    assert settings.quick_cpu_seconds(45.0, {settings.TRAINER_QUICK_CPU_SECONDS: " 20 "}) == 20.0
    for bad in ("soon", "0", "-3"):
        with pytest.raises(settings.ConfigError, match=settings.TRAINER_QUICK_CPU_SECONDS):
            settings.quick_cpu_seconds(45.0, {settings.TRAINER_QUICK_CPU_SECONDS: bad})


@pytest.mark.parametrize("uncertainty", [0.0, 1e-300, 0.1, 1 / 3, 0.5, 0.9999999999999999, 1.0])
def test_uncertain_row_keys_give_back_exactly_what_they_sort_by(uncertainty):
    pid = layout.new_prediction_id(1_700_000_000_000)
    key = layout.uncertain_first_key(uncertainty, pid)
    assert layout.uncertain_first_parts(key) == (uncertainty, pid)
    # and they sort most uncertain first, as the ranking's cursor expects
    assert (
        layout.uncertain_first_key(uncertainty, pid) < layout.uncertain_first_key(uncertainty / 2, pid)
    ) == (uncertainty > 0)
