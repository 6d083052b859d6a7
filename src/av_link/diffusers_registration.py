"""Make `DiffusionPipeline.from_pretrained(av_link_folder)` work after a plain `import av_link`.

diffusers resolves the pipeline class named in `model_index.json` as an attribute of the `diffusers`
module, so av-link's pipelines must be set there. `import av_link` must stay cheap (importing diffusers
imports torch: seconds), so the registration waits for diffusers: if it is already imported, it happens
at once; otherwise a one-shot import hook runs it right after diffusers' own `__init__` has executed.
Components need no registration: model_index.json names their modules.
"""

import importlib.abc
import importlib.machinery
import sys


def register_pipelines() -> None:
    """Set av-link's pipeline classes as attributes of the diffusers module (idempotent)."""
    import diffusers

    from . import pipelines

    for name in ("AVLinkV2APipeline", "AVLinkA2VPipeline", "AVLinkTextToAudioPipeline", "AVLinkTextToVideoPipeline",
                 "AVLinkTextToAudioVideoPipeline"):
        cls = getattr(pipelines, name)
        if getattr(diffusers, name, cls) is not cls:
            raise ImportError(f"diffusers already defines a {name}; av-link cannot register its own")
        setattr(diffusers, name, cls)


class _AfterDiffusersImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps diffusers' loader so `register_pipelines` runs once diffusers is executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "diffusers":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding this finder again
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if not _initializing(f"{__package__}.pipelines"):  # else it is importing diffusers now and registers at its end
                register_when_ready()

        spec.loader.exec_module = exec_then_register
        return spec


def _initializing(name: str) -> bool:
    return getattr(getattr(sys.modules.get(name), "__spec__", None), "_initializing", False)


_pending = False


def register_when_ready() -> None:
    """Register now, unless an av-link module the pipelines import from is still executing (it imported diffusers
    before defining what they need, e.g. `import av_link.schedulers` first): then the packages whose own imports
    bring in diffusers (schedulers, loaders) register at their end through `register_if_pending`."""
    global _pending
    try:
        register_pipelines()
        _pending = False
    except ImportError:
        if not any(_initializing(name) for name in list(sys.modules) if name.startswith(f"{__package__}.")):
            raise
        _pending = True


def register_if_pending() -> None:
    if _pending:
        register_when_ready()


def install() -> None:
    if "diffusers" in sys.modules:
        register_pipelines()
    elif not any(isinstance(finder, _AfterDiffusersImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterDiffusersImport())
