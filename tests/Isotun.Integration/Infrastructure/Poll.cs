namespace Isotun.Integration.Infrastructure;

/// <summary>
/// The one polling helper of the integration tests: a condition is checked every 200 ms until it holds or the time is
/// up (the machine may be busy, so the times are generous). Tests assert the outcome, never how long it took.
/// </summary>
public static class Poll
{
    public static bool Until(TimeSpan timeout, Func<bool> condition)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until)
        {
            if (condition()) return true;
            Thread.Sleep(200);
        }
        return condition();
    }
}
