namespace BackupFuse.Fuse.Tests;

/// <summary>Bounded waits on mount tasks (the mount runs on its own thread; no test may hang forever).</summary>
internal static class Waits
{
    public static bool Within(Task task, TimeSpan timeout)
    {
        try
        {
            return task.Wait(timeout);
        }
        catch (AggregateException)
        {
            return true; // completed (faulted): callers inspect the task
        }
    }

    public static T ResultOf<T>(Task<T> task) => task.GetAwaiter().GetResult();
}
