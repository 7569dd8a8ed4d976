// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title DemoTarget
/// @notice A counter with one entry point per trigger kind, an event for event-triggered jobs,
///         a resolver for condition jobs, and an Automation-compatible checkUpkeep/performUpkeep pair.
contract DemoTarget {
    uint256 public count;
    uint256 public timeCount;
    uint256 public cronCount;
    uint256 public eventCount;
    uint256 public conditionCount;
    uint256 public upkeepCount;
    /// @notice Sum of the values passed to `onCondition`, so tests see the resolver's payload.
    uint256 public conditionTotal;
    /// @notice Work the resolver reports; `request` adds to it, `onCondition` consumes it.
    uint256 public pending;
    uint256 public lastUpkeepAt;
    /// @notice The check time carried in the last performData (proves the payload round-trips).
    uint256 public lastCheckedAt;
    uint256 public immutable upkeepInterval;

    event Ticked(string kind, address indexed caller, uint256 count);
    /// @notice The event that demo event jobs listen for.
    event DemoEvent(address indexed sender, uint256 indexed tag, uint256 value);

    error NoWork();
    error UpkeepNotNeeded();

    /// @param upkeepInterval_ seconds between upkeeps the Automation-compatible pair asks for
    constructor(uint256 upkeepInterval_) {
        upkeepInterval = upkeepInterval_;
    }

    /// @notice Entry point of the demo Time job.
    function onTime() external {
        timeCount++;
        emit Ticked("time", msg.sender, ++count);
    }

    /// @notice Entry point of the demo Cron job.
    function onCron() external {
        cronCount++;
        emit Ticked("cron", msg.sender, ++count);
    }

    /// @notice Entry point of the demo Event job.
    function onEvent() external {
        eventCount++;
        emit Ticked("event", msg.sender, ++count);
    }

    /// @notice Entry point of the demo Condition job; `amount` comes from the resolver.
    function onCondition(uint256 amount) external {
        if (amount == 0 || amount > pending) revert NoWork();
        pending -= amount;
        conditionTotal += amount;
        conditionCount++;
        emit Ticked("condition", msg.sender, ++count);
    }

    /// @notice Emits the demo event that event jobs watch.
    function emitDemo(uint256 tag, uint256 value) external {
        emit DemoEvent(msg.sender, tag, value);
    }

    /// @notice Asks the condition job to run (the resolver turns true).
    function request(uint256 amount) external {
        pending += amount;
    }

    /// @notice Resolver (mode 0): whether work is pending, and the calldata to do it.
    function checker() external view returns (bool canExec, bytes memory execPayload) {
        if (pending == 0) return (false, bytes(""));
        return (true, abi.encodeCall(this.onCondition, (pending)));
    }

    /// @notice Automation-compatible check (mode 1).
    function checkUpkeep(bytes calldata checkData) external view returns (bool upkeepNeeded, bytes memory performData) {
        upkeepNeeded = block.timestamp >= lastUpkeepAt + upkeepInterval;
        performData = abi.encode(block.timestamp, checkData);
    }

    /// @notice Automation-compatible perform (mode 1); re-checks like any Automation upkeep should.
    function performUpkeep(bytes calldata performData) external {
        if (block.timestamp < lastUpkeepAt + upkeepInterval) revert UpkeepNotNeeded();
        (uint256 checkedAt,) = abi.decode(performData, (uint256, bytes));
        lastCheckedAt = checkedAt;
        lastUpkeepAt = block.timestamp;
        upkeepCount++;
        emit Ticked("upkeep", msg.sender, ++count);
    }
}
