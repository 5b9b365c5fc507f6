"""Memory of failed calls: an oversized-line error keeps nothing of the line alive."""

from __future__ import annotations

from tests.rss_probe import peak_growth_of_one_huge_line_call, run_probe

MIB = 1024


def test_oversized_line_errors_do_not_keep_their_buffers_alive() -> None:
    # Each call's CLI prints a 9 MiB line, past the default 8 MiB max_line_bytes; every
    # error is kept (as a daemon's history or a test's list would) with the cycle
    # collector off, so anything an error references stays alive.
    result = run_probe(
        """
        import trio
        import actors
        from supervisor import ErrorCategory, LLMError, RetryConfig, open_supervisor

        async def main():
            spec = actors.fake({"oversized_line_bytes": 9 * 1024 * 1024})
            kept = []
            async with open_supervisor(spec, retry=RetryConfig(max_attempts=1)) as sup:
                async def fail():
                    try:
                        await sup.ask("big line")
                    except LLMError as error:
                        assert error.category is ErrorCategory.MALFORMED_OUTPUT, error
                        kept.append(error)
                for _ in range(3):  # warm up allocator and trio before the baseline
                    await fail()
                base = vm("VmRSS")
                for _ in range(30):
                    await fail()
                after = vm("VmRSS")
            print(json.dumps({"base": base, "after": after, "errors": len(kept)}))

        gc.disable()
        trio.run(main)
        """
    )
    assert result["errors"] == 33
    # Holding each error's 8 MiB buffer would add 240 MiB; allocator noise is far less.
    assert result["after"] - result["base"] < 64 * MIB, result


def test_the_probe_sees_a_held_line() -> None:
    # The probe's own honesty: a line within max_line_bytes is held whole, and shows.
    result = peak_growth_of_one_huge_line_call(20 * 1024 * 1024, 64 * 1024 * 1024)
    assert result["reset"]
    assert result["peak"] - result["base"] > 20 * MIB, result
