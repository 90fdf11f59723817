"""autograd_lite.testing needs the test extra (hypothesis) and says so in one sentence without it."""
import subprocess
import sys


def test_autograd_lite_testing_without_hypothesis_names_the_extra():
    code = ("import sys\nsys.modules['hypothesis'] = None\n"
            "try:\n    import autograd_lite.testing\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == ("autograd_lite.testing needs hypothesis, which is not installed: "
                           "pip install 'autograd-lite[test]'")
