"""The codec a store is opened with: a new store records its model and rate, an existing one keeps its own."""

from sdfs.codec import DEFAULT_MODEL
from sdfs.mount import open_codec_for_store
from sdfs.store import Store


def test_a_new_store_gets_sd3_and_records_its_rate(tmp_path):
    with Store(tmp_path / "s") as store:
        codec = open_codec_for_store(store, None, "cpu", None, {})
        assert DEFAULT_MODEL == "madebyollin/taesd3" and store.settings["model"] == DEFAULT_MODEL
        assert store.settings["family"] == "sd3" and store.settings["codec"] == {"levels": 8}
        assert codec.quantizer.levels == 8 and store.settings["quality_floor"] == "ssimulacra2:30"
    with Store(tmp_path / "b") as store:
        open_codec_for_store(store, "madebyollin/taesd", "cpu", None, {"bits": 4, "levels": None})
        assert store.settings["codec"] == {"bits": 4}


def test_a_store_made_before_rates_were_recorded_keeps_5_bits(tmp_path):
    for model, family in (("madebyollin/taesd", "sd1"), ("madebyollin/taesd3", "sd3")):
        with Store(tmp_path / family) as store:
            store.update_settings({"family": family, "model": model, "codec": {}, "quality_floor": "off"})
            assert open_codec_for_store(store, None, "cpu", None, {}).quantizer.levels == 32
            assert store.settings["codec"] == {}
