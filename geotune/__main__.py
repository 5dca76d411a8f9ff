from finetune.fast_exit import exit_now
from geotune.cli import main

exit_now(main(entry_point=True))
