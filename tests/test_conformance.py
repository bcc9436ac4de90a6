"""The official Jupyter conformance suite (jupyter-kernel-test) against glassbox."""
import unittest

import jupyter_kernel_test

from conftest import FIRST_CELL_TIMEOUT, run


class GlassboxConformance(jupyter_kernel_test.KernelTests):
    kernel_name = "glassbox"
    language_name = "rust"
    file_extension = ".rs"

    code_hello_world = 'println!("hello, world");'
    code_stderr = 'eprintln!("oops, an error");'
    code_generate_error = 'panic!("this cell fails");'
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"glass".to_string() + "box"', "result": '"glassbox"'},
    ]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The suite's 15 s per cell is for warm cells: pay the REPL start-up here first.
        warm = run(cls.kc, "1", timeout=FIRST_CELL_TIMEOUT)
        assert warm.reply["content"]["status"] == "ok"


if __name__ == "__main__":
    unittest.main()
