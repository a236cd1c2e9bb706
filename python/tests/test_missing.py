"""Where libwrench.so.1 is not installed: import works, nothing fires."""

from __future__ import annotations

from conftest import run_python, write_trigger

MISSING = "/nonexistent/libwrench.so.1"


def test_without_the_library_every_point_answers_false(scratch) -> None:
    # A trigger file that would fire, and a switch turned on: still False.
    write_trigger(scratch, "my-charm", "push-fails\n")
    result = run_python(
        f"""
    import logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format="%(name)s|%(levelname)s|%(message)s")
    import wrench
    print("available", wrench.available())
    print("enabled", wrench.is_enabled())
    print("set_enabled", wrench.set_enabled(True))
    wrench.set_dir({str(scratch)!r})
    wrench.set_seed(3)
    wrench.set_recheck_ms(5)
    print("dir", wrench.get_dir())
    print("active", wrench.is_active("my-charm", "push-fails"))
    print("error", wrench.error("my-charm", "push-fails"))
    print("fault", wrench.fault("my-charm", "push-fails"))
    wrench.raise_if_active("my-charm", "push-fails")
    wrench.point("my-charm", "push-fails", raises=ConnectionError)
    with wrench.disabled():
        pass
    try:
        wrench.is_active(b"my-charm", "push-fails")
    except TypeError:
        print("TypeError still raised")
    """,
        WRENCH_LIBRARY=MISSING,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "available False" in lines
    assert "enabled False" in lines
    assert "set_enabled False" in lines
    assert "dir None" in lines
    assert "active False" in lines
    assert "error 0" in lines
    assert "fault None" in lines
    assert "TypeError still raised" in lines
    messages = [line for line in lines if line.startswith("wrench|")]
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"wrench|DEBUG|{MISSING} could not be loaded")
    assert result.stderr == ""


def test_without_the_library_import_is_silent_by_default() -> None:
    result = run_python("import wrench; print(wrench.is_active('c', 'f'))", WRENCH_LIBRARY=MISSING)
    assert result.returncode == 0
    assert result.stdout.strip() == "False"
    assert result.stderr == ""


def test_python_e_ignores_wrench_library() -> None:
    # -E: the environment variable is ignored, as PYTHON* ones are; the
    # library is then looked for by its soname only.
    result = run_python(
        """
    import subprocess, sys
    code = "import wrench._native as n; print(n._library_name())"
    print(subprocess.run([sys.executable, "-E", "-c", code], capture_output=True, text=True).stdout)
    """,
        WRENCH_LIBRARY=MISSING,
    )
    assert result.stdout.strip() == "libwrench.so.1"
