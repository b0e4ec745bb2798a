"""The toy profile's image mirror, shared by every asset that downloads image URLs (raw captions, WIT)."""
from contextlib import contextmanager

from pipeline.config import Profile
from pipeline.lake import Lake
from pipeline.toy.image_server import toy_mirror


@contextmanager
def url_mirror(profile: Profile, lake: Lake, log):
    """Toy profile: serve the toy world's images on a loopback server and point the URL lists at it.
    Other profiles download the URLs as written (yields None)."""
    if not profile.is_toy:
        yield None
        return
    with toy_mirror(lake.toy_world("www"), stall_s=profile.download.timeout_s + 3) as mirror:
        log(f"serving toy images at {next(iter(mirror.values()))}")
        yield mirror
