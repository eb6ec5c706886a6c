"""`readthrough make-tiny-models DIR`: write tiny random Qwen3-TTS checkpoints for tests and offline trials."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="make-tiny-models")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--real-codec", is_flag=True,
              help="Use the real 1920-samples-a-frame vocoder shape (larger and much slower on a CPU).")
def command(directory: Path, real_codec: bool):
    """Write tiny random Qwen3-TTS checkpoints to DIR/base, DIR/voice-design and DIR/custom-voice.

    They load through the real mlx-audio code and speak random noise-like audio in seconds on any machine:
    use them to try the pipeline, or in tests, without downloading gigabytes of weights. Folders that
    already hold a complete checkpoint from this version are left alone. Same bytes on every run.

    \b
    Examples:
      readthrough make-tiny-models /tmp/tiny
      readthrough render data/sample.fountain -o out/ --engine qwen3 --models /tmp/tiny
      readthrough make-tiny-models /tmp/tiny-real --real-codec
    """
    from pipeline.testing.tiny import make_tiny_models

    out = make_tiny_models(directory, fast_codec=not real_codec)
    for kind, folder in out.items():
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        click.echo(f"{kind:13s} {folder}  ({size / 1e6:.1f} MB)")
