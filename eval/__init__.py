"""Evaluation: benchmark readers (``readers``, ``geochat_bench``), batched generation (``generate``),
one runner per benchmark (``runners``), pure metrics (``metrics``), rescoring (``scoring``), checkpoint
evaluation (``api``), the ``geotune eval`` / ``geotune compare`` commands (``cli``, ``compare``), plots."""
