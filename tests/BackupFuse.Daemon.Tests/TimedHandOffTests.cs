using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Tests;

public sealed class TimedHandOffTests
{
    [Fact]
    public void TheValueIsTakenOnceAndThenBelongsToTheTaker()
    {
        var value = new Probe();
        using var handOff = new TimedHandOff<Probe>(value, TimeSpan.FromMinutes(1));
        Assert.Same(value, handOff.Take());
        Assert.Null(handOff.Take());
        handOff.Dispose();
        Assert.False(value.Disposed); // taken: the hand-off no longer owns it
    }

    [Fact]
    public void AValueNobodyTakesIsDisposedWhenItsTimeIsUp()
    {
        var value = new Probe();
        var handOff = new TimedHandOff<Probe>(value, TimeSpan.FromMilliseconds(50));
        Assert.True(value.WaitDisposed(TimeSpan.FromSeconds(10)), "not disposed 10 s after a 50 ms lifetime");
        Assert.Null(handOff.Take());
    }

    [Fact]
    public void AnUnreferencedHandOffStillDisposesItsValue()
    {
        // The provider drops its reference when a plugin entry is replaced; the timer must still run.
        var value = new Probe();
        Start(value);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.True(value.WaitDisposed(TimeSpan.FromSeconds(10)), "a collected hand-off left its value open");

        static void Start(Probe value) => _ = new TimedHandOff<Probe>(value, TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void TakeAndExpiryRacingGiveTheValueToExactlyOne()
    {
        for (int i = 0; i < 200; i++)
        {
            var value = new Probe();
            var handOff = new TimedHandOff<Probe>(value, TimeSpan.FromMilliseconds(1));
            Thread.SpinWait(i * 50);
            var taken = handOff.Take();
            value.WaitDisposed(TimeSpan.FromMilliseconds(taken == null ? 10_000 : 20));
            Assert.True(taken != null ^ value.Disposed, $"round {i}: taken {taken != null}, disposed {value.Disposed}");
        }
    }

    private sealed class Probe : IDisposable
    {
        private readonly ManualResetEventSlim _disposed = new();

        public bool Disposed => _disposed.IsSet;

        public bool WaitDisposed(TimeSpan timeout) => _disposed.Wait(timeout);

        public void Dispose() => _disposed.Set();
    }
}
