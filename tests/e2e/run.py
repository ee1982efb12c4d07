"""Runs the end-to-end suite and ends with the line "N passed, M failed";
exits non-zero on any failure (including a missing package)."""

import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


class TimedResult(unittest.TextTestResult):
    """Shows how long each case took, to keep the suite well inside CI's budget."""

    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        self.stream.write(f"    ({time.monotonic() - self._t0:.1f} s)\n")
        self.stream.flush()
        super().stopTest(test)


def main():
    names = sys.argv[1:]
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(names) if names else loader.discover(str(Path(__file__).parent), "test_*.py")
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=TimedResult).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped)
    passed -= len(result.unexpectedSuccesses)
    if result.skipped:
        # A skipped end-to-end case hides a missing piece: count it as failed.
        failed += len(result.skipped)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
