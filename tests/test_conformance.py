"""The official Jupyter conformance suite (jupyter-kernel-test) against glassbox, with every
sample attribute set."""
import unittest

import jupyter_kernel_test

from conftest import FIRST_CELL_TIMEOUT, run, tiny_png_rust


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
    code_display_data = [
        {"code": 'glassbox::display::show(&Output::html("<b>glass</b>"));', "mime": "text/html"},
        {"code": f"glassbox::display::show(&Output::png({tiny_png_rust()}));", "mime": "image/png"},
        {"code": 'glassbox::display::show(&Output::svg("<svg xmlns=\\"http://www.w3.org/2000/svg\\"/>"));',
         "mime": "image/svg+xml"},
    ]
    code_clear_output = "glassbox::display::clear(false);"
    code_page_something = "?seed"
    code_inspect_sample = ":seed"
    code_history_pattern = "6*"
    supported_history_operations = ("tail", "range", "search")
    completion_samples = [
        {"text": ":see", "matches": {":seed"}},
        {"text": ":help va", "matches": {"vars"}},
        {"text": ":ti", "matches": {":time", ":timing", ":time_passes"}},
    ]
    complete_code_samples = ["1", "let x = 1;", "fn f() -> i32 { 1 }", ":seed 3", 'println!("{}", "}");']
    incomplete_code_samples = ["fn f() {", "let v = vec![1,", "let x = 1 +"]
    invalid_code_samples = ["let x = 1; }", "let = = 2;", "(]"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The suite's 15 s per cell is for warm cells: pay the REPL start-up here first.
        warm = run(cls.kc, "1", timeout=FIRST_CELL_TIMEOUT)
        assert warm.reply["content"]["status"] == "ok"


if __name__ == "__main__":
    unittest.main()
