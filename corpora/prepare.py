"""Command line: prepare a corpus (or find it in the cache) and print its directory.

    python -m corpora.prepare corpus=synthetic corpus.quality=0.3
"""
# Only the command line lives here (the work is in corpora.cache): nothing imports this module,
# so `python -m corpora.prepare` never runs it twice under two names.
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

from corpora.cache import prepare_corpus
from corpora.config import CorpusConfig


@dataclass
class PrepareConfig:
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)


def main(argv: list[str]) -> int:
    from common.cli import compose

    cfg = compose("prepare", argv, _register, PrepareConfig).corpus
    corpus = prepare_corpus(cfg, progress=sys.stderr.isatty())
    print(corpus.path)
    return 0


if __name__ == "__main__":
    from common.cli import main_guard

    main_guard(lambda: main(sys.argv[1:]))
