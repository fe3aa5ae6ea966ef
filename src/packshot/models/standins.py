"""Tiny, randomly initialised SD 1.5 / SDXL / SD 1.5-inpainting / FLUX.2 [klein] / Z-Image
pipelines in diffusers format.

They stand in for real weights in tests and the offline demo: same classes, same folder layout,
same `from_pretrained` path, same 8x VAE down-sampling, a real CLIP tokenizer (SD) or a small
byte-level BPE tokenizer with Qwen3's chat template (FLUX.2, Z-Image); but a few channels and
random weights, so the images they make are noise. Component shapes follow the
`get_dummy_components()` of diffusers' own pipeline tests.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import diffusers
import torch
import transformers
from diffusers import (
    AutoencoderKL,
    AutoencoderKLFlux2,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    Flux2KleinPipeline,
    Flux2Transformer2DModel,
    PNDMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionUpscalePipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
)

from packshot.cachedir import build_into_cache
from packshot.errors import PackshotError, UsageError
from packshot.models.families import STAND_IN_KIND, stand_in_aliases

# Bump when a change here changes what gets built: cached stand-ins with another number are rebuilt.
BUILDER_VERSION = 1

# CLIP's BPE vocabulary: 256 byte symbols, the same with '</w>', 48,894 merges, 2 specials.
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_LENGTH = 77  # CLIP's context length; SD pads/truncates every prompt to it
_CLIP_NUM_MERGES = 49152 - 256 - 2  # as in OpenAI CLIP's SimpleTokenizer
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"

# Tiny sizes. The text encoders' width is the UNet's cross-attention width (SDXL: both of them).
_TEXT_HIDDEN = 32
_UNET_CHANNELS = (8, 16)  # SD: (320, 640, 1280, 1280)
_VAE_CHANNELS = (8, 8, 16, 16)  # SD: (128, 256, 512, 512); 4 blocks = 3 halvings = 8x, as real SD
_LATENT_SIZE = 8  # UNet sample_size: 8x8 latents, so the pipelines' default size is 64 px
# Sampling steps for a stand-in's images (training samples, the demo's shots): they are noise
# at any step count, and a few steps show the whole flow (25, the real models' default, is
# most of a tiny training job's time).
STAND_IN_SAMPLE_STEPS = 4


# -- the CLIP tokenizer, built offline -------------------------------------------------------


def _clip_bpe_path() -> Path:
    """The real CLIP BPE vocabulary that ships inside the open_clip_torch wheel.

    Found without importing open_clip: importing it needs torchvision, which packshot avoids.
    """
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise PackshotError(
        "The tiny stand-in models need the CLIP vocabulary file that ships with open_clip_torch, "
        "and it is not installed. Install it without its dependencies (they would replace torch): "
        "`pip install --no-deps open_clip_torch==3.3.0`."
    )


def _bytes_to_unicode() -> dict[int, str]:
    """Byte -> printable character map of GPT-2/CLIP byte-level BPE (from OpenAI CLIP, MIT)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


@lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary (token -> id) and merge rules ("a b"), as SimpleTokenizer builds them."""
    lines = gzip.decompress(_clip_bpe_path().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : _CLIP_NUM_MERGES + 1]  # line 0 is a "#version" header
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges]
    tokens += [_BOS, _EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise PackshotError(
            f"The CLIP vocabulary file {_clip_bpe_path()} gave {len(vocab)} tokens, "
            f"not {CLIP_VOCAB_SIZE}: not the file OpenAI CLIP ships. Reinstall open_clip_torch."
        )
    return vocab, merges


def _write_vocab_and_merges(out_dir: Path) -> tuple[Path, Path]:
    vocab, merges = _clip_vocab_and_merges()
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def clip_tokenizer_files(out_dir: Path) -> tuple[Path, Path]:
    """Write CLIP's `vocab.json`, `merges.txt` and `tokenizer_config.json` into `out_dir`.

    The folder then loads with `CLIPTokenizer.from_pretrained(out_dir)`, as the tokenizer
    folder of a real SD checkpoint does. Returns the paths of the vocabulary and the merges.
    """
    vocab_file, merges_file = _write_vocab_and_merges(out_dir)
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CLIP_MAX_LENGTH,
        "bos_token": _BOS,
        "eos_token": _EOS,
        "unk_token": _EOS,
        "pad_token": _EOS,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return vocab_file, merges_file


def build_clip_tokenizer(pad_token: str = _EOS) -> CLIPTokenizer:
    """A real CLIP tokenizer (the one SD 1.5 and SDXL use), built offline.

    SDXL's second tokenizer pads with "!" instead of "<|endoftext|>"; pass `pad_token="!"` for it.
    """
    # Through files and from_pretrained: the one constructor transformers 4 and 5 share.
    with tempfile.TemporaryDirectory(prefix="packshot-clip-") as folder:
        clip_tokenizer_files(Path(folder))
        return CLIPTokenizer.from_pretrained(folder, pad_token=pad_token)


# -- the tiny components ---------------------------------------------------------------------


def _text_encoder_config(hidden_act: str, projection_dim: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,  # the real vocabulary, so every token id is valid
        max_position_embeddings=CLIP_MAX_LENGTH,
        hidden_size=_TEXT_HIDDEN,
        intermediate_size=37,  # an odd size on purpose, as in diffusers' tests
        num_attention_heads=4,
        num_hidden_layers=2,  # >= 2: SDXL reads the penultimate layer
        hidden_act=hidden_act,
        projection_dim=projection_dim or _TEXT_HIDDEN,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def _vae_shape(latent_channels: int, layers_per_block: int) -> dict[str, object]:
    """A tiny VAE's shape: four blocks of `_VAE_CHANNELS` (three halvings: 8x, as the real
    ones), for diffusers' AutoencoderKL and AutoencoderKLFlux2 alike."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * len(_VAE_CHANNELS),
        "up_block_types": ("UpDecoderBlock2D",) * len(_VAE_CHANNELS),
        "block_out_channels": _VAE_CHANNELS,
        "layers_per_block": layers_per_block,
        "latent_channels": latent_channels,
        "norm_num_groups": 4,  # must divide every block's channels (SD: 32)
        "sample_size": _LATENT_SIZE * 8,
    }


def _vae(scaling_factor: float) -> AutoencoderKL:
    return AutoencoderKL(**_vae_shape(4, layers_per_block=2), scaling_factor=scaling_factor)


def _unet(in_channels: int, cross_attention_dim: int, **extra: object) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=_LATENT_SIZE,
        in_channels=in_channels,  # 4 latents; inpainting adds 4 masked-image latents + 1 mask = 9
        out_channels=4,
        block_out_channels=_UNET_CHANNELS,
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        norm_num_groups=4,  # must divide every block's channels (SD: 32)
        **extra,
    )


def _sd15_scheduler() -> PNDMScheduler:
    # The scheduler config of runwayml/stable-diffusion-v1-5.
    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
    )


def _sd15(in_channels: int) -> dict[str, object]:
    """SD 1.5 components; `in_channels=9` makes the inpainting variant."""
    return {
        "vae": _vae(scaling_factor=0.18215),  # SD 1.5's latent scale
        "text_encoder": CLIPTextModel(_text_encoder_config("quick_gelu")),
        "tokenizer": build_clip_tokenizer(),
        "unet": _unet(in_channels, cross_attention_dim=_TEXT_HIDDEN),
        "scheduler": _sd15_scheduler(),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def _sdxl() -> dict[str, object]:
    """SDXL components: two text encoders whose outputs are concatenated, and time conditioning."""
    time_embed_dim = 8  # SDXL: 256
    return {
        "vae": _vae(scaling_factor=0.13025),  # SDXL's latent scale
        "text_encoder": CLIPTextModel(_text_encoder_config("quick_gelu")),
        "text_encoder_2": CLIPTextModelWithProjection(_text_encoder_config("gelu")),
        "tokenizer": build_clip_tokenizer(),
        "tokenizer_2": build_clip_tokenizer(pad_token="!"),  # as SDXL's tokenizer_2
        "unet": _unet(
            4,
            cross_attention_dim=2 * _TEXT_HIDDEN,  # both encoders' hidden states, concatenated
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=time_embed_dim,
            # 6 time ids (original size, crop corner, target size) + the pooled text embedding
            projection_class_embeddings_input_dim=6 * time_embed_dim + _TEXT_HIDDEN,
            transformer_layers_per_block=(1, 2),
        ),
        "scheduler": EulerDiscreteScheduler(
            # The scheduler config of stabilityai/stable-diffusion-xl-base-1.0.
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            num_train_timesteps=1000,
            steps_offset=1,
            timestep_spacing="leading",
        ),
        "image_encoder": None,
        "feature_extractor": None,
    }


# -- FLUX.2 [klein]: a Qwen tokenizer and Qwen3 encoder, a flow transformer ------------------

# Qwen's special tokens, and its chat template reduced to what Flux2KleinPipeline asks of it
# (one user message, a generation prompt, thinking off: an empty <think> block).
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\n\n</think>\n\n' }}{% endif %}{% endif %}"
)
# Words merged whole by the tiny BPE (with their leading space): the prompts tests write.
_BPE_TEXT = (
    "a photo of the and on in with white black studio background product shot light soft "
    "wooden table marble sks backpack headphones bottle shoe watch bag lamp mug chair red "
    "blue green close up lifestyle packshot"
)
_BPE_WORDS = tuple(_BPE_TEXT.split())


def build_qwen_tokenizer() -> Qwen2Tokenizer:
    """A small byte-level BPE tokenizer shaped like Qwen's (its pre-tokenizer, specials and
    chat template), built offline: 256 byte symbols, the merges that spell `_BPE_WORDS`."""
    byte_symbols = list(_bytes_to_unicode().values())
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols)}
    merges: list[tuple[str, str]] = []
    space = _bytes_to_unicode()[ord(" ")]
    # The words after a space first: the pre-tokenizer keeps the space with the word.
    for spelled in [space + word for word in _BPE_WORDS] + list(_BPE_WORDS):
        token = spelled[0]
        for char in spelled[1:]:
            if token + char not in vocab:
                merges.append((token, char))
                vocab[token + char] = len(vocab)
            token += char
    for special in _QWEN_SPECIALS:
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=131072,
        additional_special_tokens=list(_QWEN_SPECIALS[1:]),
    )
    tokenizer.chat_template = _QWEN_CHAT_TEMPLATE
    return tokenizer


_QWEN_HIDDEN = 16  # Qwen3-4B: 2560


def _qwen3_config(tokenizer: Qwen2Tokenizer, num_hidden_layers: int) -> Qwen3Config:
    """A tiny Qwen3 text encoder's config: layers of width 16 (Qwen3-4B: 36 of 2560) over the
    tiny tokenizer's vocabulary, 512 positions (the pipelines' prompt length)."""
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=_QWEN_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _flux2() -> dict[str, object]:
    """FLUX.2 [klein] components: a 8x VAE with 4 latent channels (klein: 32), patchified 2x2
    into the transformer's 16 input channels; one double and two single blocks (klein 4B: 5
    and 20); 28 Qwen3 layers (the pipeline stacks hidden states 9, 18 and 27) whose three
    stacked outputs are the transformer's text input (klein 4B: 3 x 2560 = 7680)."""
    tokenizer = build_qwen_tokenizer()
    text_config = _qwen3_config(tokenizer, num_hidden_layers=28)
    latent_channels = 4
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(
            # The scheduler config of black-forest-labs/FLUX.2-klein-4B: shifted per image size
            # by the pipeline (`mu`), from the FLUX.1 dynamic-shifting defaults.
            num_train_timesteps=1000,
            shift=3.0,
            use_dynamic_shifting=True,
            base_shift=0.5,
            max_shift=1.15,
            base_image_seq_len=256,
            max_image_seq_len=4096,
            time_shift_type="exponential",
        ),
        "vae": AutoencoderKLFlux2(**_vae_shape(latent_channels, layers_per_block=1)),
        "text_encoder": Qwen3ForCausalLM(text_config),
        "tokenizer": tokenizer,
        "transformer": Flux2Transformer2DModel(
            patch_size=1,
            in_channels=latent_channels * 4,
            num_layers=1,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=3 * _QWEN_HIDDEN,
            timestep_guidance_channels=256,
            mlp_ratio=3.0,
            axes_dims_rope=(4, 4, 4, 4),  # sums to attention_head_dim
            guidance_embeds=False,
        ),
        "is_distilled": False,
    }


def _zimage() -> dict[str, object]:
    """Z-Image components, shaped as diffusers' own Z-Image pipeline tests: the FLUX.1-style
    8x VAE with 16 latent channels and its shift and scale; a transformer of width 32 with two
    main layers and one noise and one context refiner (Z-Image: 30 and 2 and 2, width 3840)
    reading 2x2 patches; a Qwen3 encoder (no language-model head, as Z-Image's) of two
    layers, the second-to-last being the transformer's text input (Z-Image: 2560 wide)."""
    tokenizer = build_qwen_tokenizer()
    latent_channels = 16
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=latent_channels,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=_QWEN_HIDDEN,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],  # sums to the head width, 32 / 2
        axes_lens=[256, 32, 32],
    )
    # The padding tokens start as `torch.empty` (uninitialised memory, NaN at times): fixed,
    # as diffusers' tests fix them.
    with torch.no_grad():
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
    return {
        # The scheduler config of Tongyi-MAI/Z-Image-Turbo: a fixed shift of 3.
        "scheduler": FlowMatchEulerDiscreteScheduler(
            num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False
        ),
        "vae": AutoencoderKL(
            **_vae_shape(latent_channels, layers_per_block=1),
            scaling_factor=0.3611,  # the FLUX.1 VAE's, which Z-Image uses
            shift_factor=0.1159,
        ),
        "text_encoder": Qwen3Model(_qwen3_config(tokenizer, num_hidden_layers=2)),
        "tokenizer": tokenizer,
        "transformer": transformer,
    }


TINY_UPSCALER = "tiny-upscaler"  # diffusers' x4 upscaler (no model family: it trains no LoRA)


def _x4_upscaler() -> StableDiffusionUpscalePipeline:
    """The shape of stabilityai/stable-diffusion-x4-upscaler: a UNet on 4 latents + the 3
    low-resolution image channels, class-embedded noise level, a VAE that halves twice (x4)."""
    # 4 latents + the 3 channels of the low-resolution image; its noise level, class-embedded;
    # cross-attention only, as the real one's high-resolution blocks (no self-attention).
    unet = _unet(7, _TEXT_HIDDEN, num_class_embeds=100, only_cross_attention=True)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,  # 3 blocks = 2 halvings = x4
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=0.08333,  # the real upscaler's VAE scaling factor
    )
    return StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=CLIPTextModel(_text_encoder_config("gelu")),
        tokenizer=build_clip_tokenizer(),
        unet=unet,
        low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(prediction_type="v_prediction"),
        max_noise_level=350,
    )


# The stand-in of each family that has one, by its alias (`ModelFamily.stand_in`), and the
# stand-ins of pipelines that are no family (the x4 upscaler `packshot deliver` may use).
_BUILDERS: dict[str, Callable[[], DiffusionPipeline]] = {
    "tiny": lambda: StableDiffusionPipeline(**_sd15(in_channels=4)),
    "tiny-sdxl": lambda: StableDiffusionXLPipeline(**_sdxl()),
    "tiny-inpaint": lambda: StableDiffusionInpaintPipeline(**_sd15(in_channels=9)),
    "tiny-flux2": lambda: Flux2KleinPipeline(**_flux2()),
    "tiny-zimage": lambda: ZImagePipeline(**_zimage()),
    TINY_UPSCALER: _x4_upscaler,
}
_NO_FAMILY = {TINY_UPSCALER}


def build_tiny_pipeline(alias: str, out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny stand-in `alias` and `save_pretrained` it into `out_dir`; return `out_dir`.

    The weights are random but deterministic: the same `alias` and `seed` give the same files.
    `out_dir` gets `model_index.json`, one folder per component (safetensors) and a
    `packshot.json` saying what it is. Written last, `packshot.json` marks a finished build.
    """
    aliases = stand_in_aliases()
    if (alias not in aliases and alias not in _NO_FAMILY) or alias not in _BUILDERS:
        raise UsageError(
            f"`{alias}` is not a tiny stand-in model. Choose one of: {', '.join(_BUILDERS)}."
        )

    # 1. Components, each from the same seed, without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = _BUILDERS[alias]()

    # 2. The diffusers folder, then the note that says what it is.
    out_dir.mkdir(parents=True, exist_ok=True)
    bars_on = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # its "Writing model shards" bar
    try:
        pipe.save_pretrained(out_dir, safe_serialization=True)
    finally:
        if bars_on:
            transformers.utils.logging.enable_progress_bar()
    for name in ("tokenizer", "tokenizer_2"):
        if (out_dir / name).is_dir():  # vocab.json and merges.txt too, as real checkpoints have
            _write_vocab_and_merges(out_dir / name)
    note = {
        "kind": STAND_IN_KIND,
        "alias": alias,
        "family": aliases[alias].name if alias in aliases else None,
        "seed": seed,
        "builder_version": BUILDER_VERSION,
        "note": "A packshot tiny stand-in: random weights, the images it makes are noise. "
        "For tests and the offline demo only.",
        "diffusers_version": diffusers.__version__,
        "transformers_version": transformers.__version__,
    }
    (out_dir / "packshot.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return out_dir


def read_stand_in_note(model_dir: Path) -> dict[str, object] | None:
    """The `packshot.json` of a tiny stand-in folder, or None for any other folder."""
    try:
        note = json.loads((model_dir / "packshot.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) and note.get("kind") == STAND_IN_KIND else None


def _is_current_stand_in(folder: Path, alias: str) -> bool:
    note = read_stand_in_note(folder)
    return (
        note is not None
        and note.get("alias") == alias
        and note.get("builder_version") == BUILDER_VERSION
        and (folder / "model_index.json").is_file()
    )


def stand_in_folder(alias: str, cache_dir: Path) -> Path:
    """The folder of the tiny stand-in `alias`, built on first use (atomically)."""
    return build_into_cache(
        cache_dir.expanduser().resolve() / "models" / alias,
        lambda folder: build_tiny_pipeline(alias, folder),
        lambda folder: _is_current_stand_in(folder, alias),
        f"the built-in model `{alias}`",
    )
