// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ForwarderLockedTarget
/// @notice The safe pattern: a target that accepts calls from one job only, by requiring
///         `msg.sender` to be that job's forwarder (`TaskManager.nextForwarder(owner)` read
///         before the owner's `createJob`, or `forwarderOf(jobId)` after it).
contract ForwarderLockedTarget {
    address public immutable forwarder;
    uint256 public count;

    constructor(address forwarder_) {
        forwarder = forwarder_;
    }

    function work() external {
        require(msg.sender == forwarder, "ForwarderLockedTarget: not my job's forwarder");
        count++;
    }
}
