using Xunit;

namespace Isotun.TestSupport;

/// <summary>
/// The one polling helper of the test suites: a condition is checked again and again until it holds or a generous
/// deadline passes (the machine may be busy). Tests assert the outcome, never how long it took. Compiled into both
/// test projects. The in-process tests poll every 10 ms and await; the integration tests, whose conditions often run
/// a command, poll every 200 ms on their own thread (<see cref="Until"/>).
/// </summary>
public static class Eventually
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private static readonly TimeSpan Often = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan Seldom = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Whether <paramref name="condition"/> came to hold before <paramref name="within"/> (default <see cref="Deadline"/>),
    /// checked every <paramref name="every"/> (10 ms by default). Once <paramref name="hopeless"/> says it never will (a
    /// process it waits for exited), the condition is checked one last time.
    /// </summary>
    public static Task<bool> Holds(Func<bool> condition, TimeSpan? within = null, TimeSpan? every = null, Func<bool>? hopeless = null) =>
        Holds(() => Task.FromResult(condition()), within, every, hopeless);

    /// <summary>The same, for an asynchronous <paramref name="condition"/>.</summary>
    public static async Task<bool> Holds(Func<Task<bool>> condition, TimeSpan? within = null, TimeSpan? every = null, Func<bool>? hopeless = null)
    {
        var end = DateTime.UtcNow + (within ?? Deadline);
        while (true)
        {
            if (await condition()) return true;
            if (DateTime.UtcNow > end) return false;
            if (hopeless?.Invoke() == true) return await condition();
            await Task.Delay(every ?? Often);
        }
    }

    /// <summary>Asserts that <paramref name="condition"/> comes to hold; <paramref name="because"/> says what did not happen.</summary>
    public static async Task True(Func<bool> condition, string because, TimeSpan? within = null) =>
        Assert.True(await Holds(condition, within), because);

    /// <summary>Waits for <paramref name="get"/> to return something, and returns it.</summary>
    public static async Task<T> Value<T>(Func<T?> get, string because, TimeSpan? within = null) where T : class
    {
        T? value = null;
        Assert.True(await Holds(() => (value = get()) is not null, within), because);
        return value!;
    }

    /// <summary>
    /// Whether <paramref name="condition"/> came to hold within <paramref name="timeout"/>, checked every
    /// <paramref name="every"/> (200 ms by default) on the calling thread: for tests that run outside an async context.
    /// Once <paramref name="hopeless"/> says it never will, the condition is checked one last time.
    /// </summary>
    public static bool Until(TimeSpan timeout, Func<bool> condition, TimeSpan? every = null, Func<bool>? hopeless = null)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (condition()) return true;
            if (hopeless?.Invoke() == true) break;
            Thread.Sleep(every ?? Seldom);
        }
        return condition();
    }
}
