import importlib

import pytest

from geotune.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_imports_and_has_its_interface(name):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.run)


def test_unknown_command_fails_with_choices(capsys):
    with pytest.raises(SystemExit):
        main(["trian"])
    assert "choose from" in capsys.readouterr().err


def test_train_py_reports_a_bad_key_in_one_line(capsys):
    import train

    assert train.main(["recipe=demo", "train.lerning_rate=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.lerning_rate" in err and "train.learning_rate" in err
