using BackupFuse.Daemon.Mounting;

namespace BackupFuse.Daemon.Tests;

public sealed class TimedHandOffTests
{
    [Fact]
    public void TheValueIsTakenOnceAndThenBelongsToTheTaker()
    {
        using var owner = new TimedHandOffs<Probe>(TimeSpan.FromMinutes(1), 4);
        var value = new Probe();
        var handOff = owner.Offer(value)!;
        Assert.Equal(1, owner.Count);
        Assert.Same(value, handOff.Take());
        Assert.Null(handOff.Take());
        Assert.Equal(0, owner.Count);
        handOff.Dispose();
        owner.Dispose();
        Assert.False(value.Disposed); // taken: the hand-off no longer owns it
    }

    [Fact]
    public void AValueNobodyTakesIsDisposedWhenItsTimeIsUp()
    {
        using var owner = new TimedHandOffs<Probe>(TimeSpan.FromMilliseconds(50), 4);
        var value = new Probe();
        var handOff = owner.Offer(value)!;
        Assert.True(value.WaitDisposed(TimeSpan.FromSeconds(10)), "not disposed 10 s after a 50 ms lifetime");
        Assert.Null(handOff.Take());
        Assert.Equal(0, owner.Count);
    }

    [Fact]
    public void AnUnreferencedHandOffStillDisposesItsValue()
    {
        // The provider drops its reference when a plugin entry is replaced; the timer must still run.
        using var owner = new TimedHandOffs<Probe>(TimeSpan.FromMilliseconds(200), 4);
        var value = new Probe();
        Start(owner, value);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.True(value.WaitDisposed(TimeSpan.FromSeconds(10)), "a collected hand-off left its value open");

        static void Start(TimedHandOffs<Probe> owner, Probe value) => owner.Offer(value);
    }

    [Fact]
    public void BeyondTheLimitAValueIsClosedAtOnce_AndTheOwnerClosesThePendingOnes()
    {
        var owner = new TimedHandOffs<Probe>(TimeSpan.FromMinutes(1), 2);
        var kept = new[] { new Probe(), new Probe() };
        Assert.NotNull(owner.Offer(kept[0]));
        Assert.NotNull(owner.Offer(kept[1]));
        var extra = new Probe();
        Assert.Null(owner.Offer(extra));
        Assert.True(extra.Disposed);
        Assert.Equal(2, owner.Count);
        Assert.False(kept[0].Disposed || kept[1].Disposed);

        owner.Dispose(); // the mount goes away: nothing stays open for the rest of the lifetime
        Assert.True(kept[0].Disposed && kept[1].Disposed);
        Assert.Equal(0, owner.Count);
    }

    [Fact]
    public void TakeAndExpiryRacingGiveTheValueToExactlyOne()
    {
        using var owner = new TimedHandOffs<Probe>(TimeSpan.FromMilliseconds(1), 1000);
        for (int i = 0; i < 200; i++)
        {
            var value = new Probe();
            var handOff = owner.Offer(value)!;
            Thread.SpinWait(i * 50);
            var taken = handOff.Take();
            value.WaitDisposed(TimeSpan.FromMilliseconds(taken == null ? 10_000 : 20));
            Assert.True(taken != null ^ value.Disposed, $"round {i}: taken {taken != null}, disposed {value.Disposed}");
        }

        Assert.Equal(0, owner.Count);
    }

    private sealed class Probe : IDisposable
    {
        private readonly ManualResetEventSlim _disposed = new();

        public bool Disposed => _disposed.IsSet;

        public bool WaitDisposed(TimeSpan timeout) => _disposed.Wait(timeout);

        public void Dispose() => _disposed.Set();
    }
}
