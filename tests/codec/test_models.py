
import pytest
import torch

from sdfs.codec import FAMILIES, ModelError, load_model
from sdfs.codec.models import LatentModel
from tests.conftest import VAE_APPROX


def _image(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=g) * 2 - 1


def test_hub_id_loads_offline_with_family(taesd):
    assert taesd.family.name == "sd1" and taesd.channels == 4 and taesd.model_id == "madebyollin/taesd"
    z = taesd.encode(_image())
    assert z.shape == (1, 4, 8, 8)
    assert taesd.decode(z).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("hub_id, family, channels", [("madebyollin/taesdxl", "sdxl", 4), ("madebyollin/taesd3", "sd3", 16)])
def test_other_families_from_hub(hub_id, family, channels):
    model = load_model(hub_id, device="cpu")
    assert model.family.name == family
    assert model.encode(_image(32)).shape == (1, channels, 4, 4)


def test_vae_approx_pair_matches_hub_model(taesd):
    model = load_model(str(VAE_APPROX / "taesd_encoder.safetensors"), device="cpu")
    assert model.family.name == "sd1" and model.model_id == "vae_approx:taesd"
    x = _image()
    # the vae_approx files are bf16 copies of the same weights
    assert torch.allclose(model.encode(x), taesd.encode(x), atol=0.1)
    by_folder = load_model(str(VAE_APPROX), family="sd3", device="cpu")
    assert by_folder.family.name == "sd3" and by_folder.channels == 16


def test_vae_approx_pth_files(tmp_path, taesd):
    from safetensors.torch import load_file

    for part in ("encoder", "decoder"):
        torch.save(load_file(str(VAE_APPROX / f"taesd_{part}.safetensors")), tmp_path / f"taesd_{part}.pth")
    model = load_model(str(tmp_path / "taesd_decoder.pth"), device="cpu")
    z = taesd.encode(_image())
    assert torch.allclose(model.decode(z), taesd.decode(z), atol=0.1)


def test_missing_hub_model_names_it_and_says_how():
    with pytest.raises(ModelError) as err:
        load_model("nobody/no-such-vae", device="cpu")
    message = str(err.value)
    assert "nobody/no-such-vae" in message and "HF_HUB_OFFLINE" in message and "--model" in message


def test_missing_vae_approx_partner(tmp_path):
    (tmp_path / "taesd_encoder.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="taesd_decoder"):
        load_model(str(tmp_path / "taesd_encoder.safetensors"), device="cpu")


def _tiny_kl(scaling: float, shift: float | None = None):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                         layers_per_block=1, scaling_factor=scaling, shift_factor=shift).eval()


def test_kl_latents_are_converted_to_diffusion_space(tmp_path):
    """A tiny random AutoencoderKL, saved and loaded like a real one: TAESD-space in and out."""
    vae = _tiny_kl(0.18215)
    vae.save_pretrained(tmp_path / "sd-vae-tiny")
    model = load_model(str(tmp_path / "sd-vae-tiny"), family="sd1", device="cpu")
    assert model.is_kl and model.family is FAMILIES["sd1"]
    # the tiny model downsamples by 2, not 8; the conversions are what is under test
    x = _image(32)
    with torch.no_grad():
        raw = vae.encode(x).latent_dist.mode()
        assert torch.allclose(model.encode(x), raw * 0.18215, atol=1e-5)
        z = torch.randn(1, 4, 16, 16)
        assert torch.allclose(model.decode(z), vae.decode(z / 0.18215).sample.clamp(-1, 1), atol=1e-5)


def test_taesd_latent_decodes_with_kl_decoder_and_back(taesd):
    """Cross-decoding: TAESD-encoded latents go through the KL decoder's scaling and the other way round."""
    vae = _tiny_kl(0.18215)
    kl = LatentModel(vae, FAMILIES["sd1"], "tiny-kl", torch.device("cpu"))
    z_taesd = taesd.encode(_image(64))
    pixels = kl.decode(z_taesd)
    with torch.no_grad():
        assert torch.allclose(pixels, vae.decode(z_taesd / 0.18215).sample.clamp(-1, 1), atol=1e-5)
    z_kl = kl.encode(_image(64))
    assert taesd.decode(z_kl).shape == (1, 3, z_kl.shape[2] * 8, z_kl.shape[3] * 8)


def test_sd3_shift_is_applied():
    vae = _tiny_kl(1.5305, 0.0609)
    kl = LatentModel(vae, FAMILIES["sd3"].__class__("sd3", 4, 8, 1.5305, 0.0609, "taesd3"), "tiny", torch.device("cpu"))
    x = _image(32)
    with torch.no_grad():
        raw = vae.encode(x).latent_dist.mode()
    assert torch.allclose(kl.encode(x), (raw - 0.0609) * 1.5305, atol=1e-5)


def test_auto_device_is_cpu_here():
    from sdfs.codec.models import pick_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type in (expected, "mps")


def test_taesd_encodes_with_the_tuned_encoder_and_says_so(taesd, taesd_own):
    assert taesd.tuned_encoder == "taesd_encoder_sdfs_v3"
    assert taesd.encoder_name == "madebyollin/taesd+taesd_encoder_sdfs_v3"
    from_files = load_model(str(VAE_APPROX / "taesd_encoder.safetensors"), device="cpu")
    assert from_files.tuned_encoder == "taesd_encoder_sdfs_v3"  # bf16 copies of the same decoder match
    assert load_model("madebyollin/taesdxl", device="cpu").tuned_encoder is None
    assert load_model("madebyollin/taesd3", device="cpu").tuned_encoder == "taesd3_encoder_sdfs_v7"
    assert load_model(str(VAE_APPROX / "taesd3_encoder.safetensors"), device="cpu").tuned_encoder == \
        "taesd3_encoder_sdfs_v7"
    stock = taesd_own
    assert stock.tuned_encoder is None and stock.encoder_name == "madebyollin/taesd"
    x = _image()
    assert not torch.allclose(stock.encode(x), taesd.encode(x), atol=0.05)
    assert torch.equal(stock.decode(taesd.encode(x)), taesd.decode(taesd.encode(x)))  # one decoder


def test_taesd3_decodes_with_the_tuned_decoder_and_says_so(taesd):
    tuned = load_model("madebyollin/taesd3", device="cpu")
    assert tuned.tuned_decoder == "taesd3_decoder_sdfs_v4"
    assert tuned.decoder_name == "madebyollin/taesd3+taesd3_decoder_sdfs_v4"
    from_files = load_model(str(VAE_APPROX / "taesd3_encoder.safetensors"), device="cpu")
    assert from_files.tuned_decoder == "taesd3_decoder_sdfs_v4"  # bf16 copies of the same decoder match
    assert taesd.tuned_decoder is None and taesd.decoder_name == "madebyollin/taesd"
    stock = load_model("madebyollin/taesd3", device="cpu", tuned_decoder=False)
    assert stock.tuned_decoder is None and stock.decoder_name == "madebyollin/taesd3"
    assert stock.tuned_encoder is None  # sdfs's encoder was tuned for the tuned decoder, not TAESD3's
    z = tuned.encode(_image())
    assert not torch.allclose(stock.decode(z), tuned.decode(z), atol=0.05)


def test_tuned_decoder_replaces_only_the_decoder_it_was_tuned_from():
    from sdfs.codec.models import _install_tuned_decoder

    model = load_model("madebyollin/taesd3", device="cpu", tuned_encoder=False, tuned_decoder=False)
    with torch.no_grad():
        model.vae.decoder.layers[0].weight[0, 0, 0, 0] += 0.01  # another fine-tune, say
    before = {k: v.clone() for k, v in model.vae.decoder.state_dict().items()}
    assert _install_tuned_decoder(model.vae, model.family) == (None, {})
    assert all(torch.equal(before[k], v) for k, v in model.vae.decoder.state_dict().items())


def test_saved_decoder_weights_are_what_the_decoder_then_holds(tmp_path):
    from sdfs.codec.models import read_weights, save_decoder

    model = load_model("madebyollin/taesd", device="cpu", tuned_encoder=False, dtype=torch.float32)
    with torch.no_grad():
        model.vae.decoder.layers[0].weight.mul_(1 + 1e-4)  # values float16 cannot hold
    path = tmp_path / "decoder.safetensors"
    save_decoder(model.vae.decoder, "abc", "sd1", path)
    tensors, metadata = read_weights(path)
    assert metadata == {"family": "sd1", "replaces_sha256": "abc"}
    # so an encoder tuned for it next (save_encoder) is tagged with the fingerprint of the decoder that ships
    assert all(torch.equal(tensors[k], v) for k, v in model.vae.decoder.state_dict().items())


def test_decoder_blocks_start_as_the_identity_and_travel_with_the_weights(tmp_path):
    from sdfs.codec.models import add_latent_blocks, load_decoder_weights, read_weights, save_decoder

    model = load_model("madebyollin/taesd", device="cpu", tuned_encoder=False, dtype=torch.float32)
    decoder = model.vae.decoder
    z = model.encode(_image())
    with torch.no_grad():
        before = decoder(z)
        added = add_latent_blocks(decoder, 2)
        assert torch.equal(decoder(z), before)  # inserted before the first upsampling, residuals at 0
        for p in added:
            p.add_(0.01)  # as training would
        trained = decoder(z)
    assert not torch.allclose(trained, before, atol=1e-3)
    path = tmp_path / "decoder.safetensors"
    save_decoder(decoder, "abc", "sd1", path, latent_blocks=2)
    tensors, metadata = read_weights(path)
    assert metadata["latent_blocks"] == "2"
    fresh = load_model("madebyollin/taesd", device="cpu", tuned_encoder=False, dtype=torch.float32).vae.decoder
    load_decoder_weights(fresh, tensors, metadata)
    with torch.no_grad():
        assert torch.equal(fresh(z), decoder(z))


def test_tuned_encoder_is_not_used_with_another_decoder():
    from sdfs.codec.models import _install_tuned_encoder

    model = load_model("madebyollin/taesd", device="cpu", tuned_encoder=False)
    before = {k: v.clone() for k, v in model.vae.encoder.state_dict().items()}
    with torch.no_grad():
        model.vae.decoder.layers[0].weight[0, 0, 0, 0] += 0.01  # a fine-tuned decoder, say
    assert _install_tuned_encoder(model.vae, model.family) is None
    assert all(torch.equal(before[k], v) for k, v in model.vae.encoder.state_dict().items())


def test_saved_encoder_weights_load_back_with_their_tag(tmp_path, taesd):
    from sdfs.codec.models import decoder_fingerprint, load_encoder_weights, read_weights, save_encoder

    path = tmp_path / "encoder.safetensors"
    save_encoder(taesd.vae.encoder, taesd, path)
    tensors, metadata = read_weights(path)
    assert metadata == {"family": "sd1", "decoder_sha256": decoder_fingerprint(taesd.vae.decoder)}
    stock = load_model("madebyollin/taesd", device="cpu", tuned_encoder=False)
    load_encoder_weights(stock.vae.encoder, path)
    x = _image()
    assert torch.allclose(stock.encode(x), taesd.encode(x), atol=0.02)  # float16 storage
    path.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="encoder.safetensors: cannot read sdfs.s weights"):
        read_weights(path)


def test_cpu_passes_run_channels_last_and_agree_with_the_default_layout(taesd, kodak_crop):
    import copy

    assert taesd.memory_format == torch.channels_last
    assert taesd.vae.decoder.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
    image = torch.from_numpy(kodak_crop.rgb().copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    latent = taesd.encode(image)
    decoded = taesd.decode(latent)
    plain = copy.copy(taesd)  # the same weights in NCHW, as before 2026-11-27
    plain.memory_format, plain.vae = torch.contiguous_format, copy.deepcopy(taesd.vae).to(memory_format=torch.contiguous_format)
    assert (plain.encode(image) - latent).abs().max() < 1e-3
    assert (plain.decode(latent) - decoded).abs().max() < 1e-3


def test_taef1_files_speak_flux_latents_not_sd3():
    """TAEF1 has TAESD3's shape; its blobs must not be labelled sd3, or TAESD3 would decode them."""
    model = load_model(str(VAE_APPROX / "taef1_encoder.safetensors"), device="cpu")
    assert model.family.name == "flux" and model.channels == 16 and model.model_id == "vae_approx:taef1"
    assert load_model(str(VAE_APPROX), family="flux", device="cpu").model_id == "vae_approx:taef1"
    assert model.decode(model.encode(_image(32))).shape == (1, 3, 32, 32)
