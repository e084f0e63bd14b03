"""`pydocs`: a TFDS corpus made of the running interpreter's own documentation.

Documents are the pydoc topics (`help("if")` etc.) and the docstrings of the standard
library's modules, classes and functions. It needs no download and no TensorFlow: the
builder writes ArrayRecord files, read back with `builder.as_data_source()`.

The text depends on the Python version, hence one BuilderConfig per `major.minor`.
"""
import contextlib
import importlib
import inspect
import io
import json
import os
import pathlib
import pkgutil
import subprocess
import sys
import tempfile
import warnings

from etils import epath
import tensorflow_datasets as tfds

from prelm_jax.data import splits

# Top-level modules never imported: they open windows or browsers, print on import,
# install hooks (readline/rlcompleter grab the terminal), patch the import system
# (distutils under setuptools), or are test suites rather than documentation.
_SKIP_MODULES = frozenset({
    "__main__", "antigravity", "distutils", "ensurepip", "idlelib", "lib2to3",
    "pydoc_data", "readline", "rlcompleter", "test", "this", "tkinter", "turtle",
    "turtledemo",
})
MIN_CHARS = 32          # below this a "document" is a one-liner like "Return self+value."


def _quiet_import(name):
  """Imports a module with its output and warnings silenced; None if it fails."""
  sink = io.StringIO()
  try:
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
        contextlib.redirect_stderr(sink):
      warnings.simplefilter("ignore")
      return importlib.import_module(name)
  except (Exception, SystemExit):  # pylint: disable=broad-except
    # Platform-only modules raise ImportError; a few raise odder things (SystemExit,
    # ValueError from ctypes.wintypes). Any of them just means "no documents here".
    return None


def _stdlib_module_names():
  """Sorted public stdlib modules, including the public submodules of packages."""
  names = []
  for top in sorted(sys.stdlib_module_names):
    if top in _SKIP_MODULES or top.startswith("_"):
      continue
    names.append(top)
    module = _quiet_import(top)
    if module is None or not hasattr(module, "__path__"):
      continue
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      for info in pkgutil.walk_packages(module.__path__, top + ".", onerror=lambda _: None):
        parts = info.name.split(".")
        # Private parts cover __main__ modules; "test*" parts are bundled test suites.
        if not any(p.startswith(("_", "test")) for p in parts):
          names.append(info.name)
  return sorted(set(names))


def _getdoc(obj):
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return inspect.getdoc(obj) or ""
  except Exception:  # pylint: disable=broad-except
    return ""


def _public_attrs(obj, names):
  """(name, value) for the public names, skipping attributes that raise on access."""
  for name in sorted(names):
    if name.startswith("_"):
      continue
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. typing.io's deprecation on access
        yield name, getattr(obj, name)
    except Exception:  # pylint: disable=broad-except
      continue


def _docstrings(module_name, module):
  """Yields (source, docstring) for a module, its classes, methods and functions.

  Methods come from `dir(cls)`, so inherited ones appear under every subclass; the
  duplicates are removed later by `collect_documents`.
  """
  yield f"doc:{module_name}", _getdoc(module)
  for name, obj in _public_attrs(module, list(vars(module))):
    source = f"doc:{module_name}.{name}"
    if inspect.isclass(obj):
      yield source, _getdoc(obj)
      for member_name, member in _public_attrs(obj, dir(obj)):
        if inspect.isroutine(member) or isinstance(member, property):
          yield f"{source}.{member_name}", _getdoc(member)
    elif inspect.isroutine(obj):
      yield source, _getdoc(obj)


def _raw_documents():
  """Yields (source, text) in a fixed order: topics, then modules by name."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  for name in sorted(topics.topics):
    yield f"topic:{name}", topics.topics[name]
  # Import everything before walking anything: importing a submodule rebinds the
  # parent's attribute (curses.has_key: function -> module), so walking while
  # importing would make the result depend on what was imported before.
  modules = [(name, _quiet_import(name)) for name in _stdlib_module_names()]
  for module_name, module in modules:
    if module is not None:
      yield from _docstrings(module_name, module)


def _collect_here():
  """collect_documents() in this process (state-dependent: see collect_documents)."""
  seen = set()
  documents = []
  for source, text in _raw_documents():
    text = inspect.cleandoc(text).strip()
    key = splits.normalise(text)
    if len(key) < MIN_CHARS or key in seen:
      continue
    seen.add(key)
    documents.append((source, text))
  return documents


def collect_documents():
  """All distinct documents of this interpreter's documentation.

  The walk runs in a fresh `sys.executable`: the caller's process may have patched
  the standard library (pytest replaces pdb.set_trace and sys.unraisablehook,
  IPython sys.displayhook), which would change the corpus, and importing ~480
  modules with their side effects does not belong in a training process.

  Returns:
    A list of (source, text), e.g. ("doc:json.dumps", "Serialize ``obj`` ..."), in a
    deterministic order; texts are unique after `splits.normalise` and have >= MIN_CHARS
    characters. The first source (in walk order) of a repeated text is kept.
  """
  package_root = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      p for p in (str(package_root), env.get("PYTHONPATH")) if p)
  code = ("import json, sys\n"
          f"from {__name__} import _collect_here\n"
          "with open(sys.argv[1], 'w', encoding='utf-8') as f:\n"
          "  json.dump(_collect_here(), f)\n")
  with tempfile.TemporaryDirectory() as tmp:
    # A file rather than stdout, which C code in an imported module could write to.
    # -P: the working directory must not shadow standard-library module names.
    out = os.path.join(tmp, "documents.json")
    result = subprocess.run([sys.executable, "-P", "-c", code, out], env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode:
      raise RuntimeError(f"Collecting the Python docs failed:\n{result.stderr[-2000:]}")
    with open(out, encoding="utf-8") as f:
      pairs = json.load(f)
  return [tuple(pair) for pair in pairs]


class Pydocs(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for the interpreter's documentation (train/validation by hash)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "pydoc topics + stdlib docstrings, deduplicated."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(
          name=f"py{sys.version_info.major}.{sys.version_info.minor}",
          description=f"Built from Python {sys.version.split()[0]}.",
      ),
  ]

  # tfds derives code_path through `importlib_resources`, which it only declares as a
  # dependency for Python < 3.9, so the lookup raises ModuleNotFoundError on 3.11
  # (tensorflow/datasets#11212). The path is only used to look for checksums.tsv.
  code_path = epath.Path(__file__)

  def __init__(self, **kwargs):
    # ArrayRecord is the format that reads back without TensorFlow (as_data_source).
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "source": tfds.features.Text(),
        }),
        homepage="https://docs.python.org/3/",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    documents = collect_documents()  # Once, shared by both splits.
    return {
        split: self._generate_examples(
            [(s, t) for s, t in documents if splits.split_of(t) == split])
        for split in ("train", "validation")
    }

  def _generate_examples(self, documents):
    for source, text in documents:
      yield source, {"text": text, "source": source}
