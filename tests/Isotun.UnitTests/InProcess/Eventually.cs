namespace Isotun.UnitTests.InProcess;

/// <summary>
/// The one polling helper of the in-process tests: a condition is checked every few milliseconds until it holds
/// or a generous deadline passes (the machine may be busy). Tests assert the outcome, never how long it took.
/// </summary>
internal static class Eventually
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    /// <summary>Whether <paramref name="condition"/> came to hold before <paramref name="within"/> (default <see cref="Deadline"/>).</summary>
    public static async Task<bool> Holds(Func<bool> condition, TimeSpan? within = null)
    {
        var end = DateTime.UtcNow + (within ?? Deadline);
        while (true)
        {
            if (condition()) return true;
            if (DateTime.UtcNow > end) return false;
            await Task.Delay(10);
        }
    }

    /// <summary>Whether the asynchronous <paramref name="condition"/> came to hold before <paramref name="within"/> (default <see cref="Deadline"/>).</summary>
    public static async Task<bool> Holds(Func<Task<bool>> condition, TimeSpan? within = null)
    {
        var end = DateTime.UtcNow + (within ?? Deadline);
        while (true)
        {
            if (await condition()) return true;
            if (DateTime.UtcNow > end) return false;
            await Task.Delay(10);
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
}
