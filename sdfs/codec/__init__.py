"""Image <-> bytes through SD latents. Knows nothing of files on a mount, LMDB or FUSE."""

from .codec import BlobInfo, Codec, CodecConfig, CodecError, CodedLatent
from .container import ContainerError
from .images import ImageData, ImageError, ImageTooLargeError, NotAnImageError, read_image
from .models import DEFAULT_MODEL, FAMILIES, LatentFamily, LatentModel, ModelError, load_model

__all__ = [
    "BlobInfo", "Codec", "CodecConfig", "CodecError", "CodedLatent", "ContainerError", "ImageData", "ImageError",
    "ImageTooLargeError", "NotAnImageError", "read_image", "DEFAULT_MODEL", "FAMILIES", "LatentFamily",
    "LatentModel", "ModelError", "load_model",
]
