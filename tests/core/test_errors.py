from kit.core.errors import InvalidInput, KitError, LaunchError


def test_message_carries_command_log_and_hint() -> None:
    error = LaunchError("could not start", command=["qemu", "-m", "64 MB"], log="a\nb\nboom",
                        exit_code=1, hint="do this")
    text = str(error)
    assert "could not start" in text
    assert "qemu -m '64 MB'" in text
    assert "boom" in text
    assert "exit code: 1" in text
    assert "what to do: do this" in text
    assert isinstance(error, KitError)


def test_invalid_input_is_a_value_error() -> None:
    assert isinstance(InvalidInput("x"), ValueError)
