// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IJobFunding {
    function fund(uint256 jobId) external payable;
}

/// @title SelfFundingTarget
/// @notice A job target that tops its own job up while it runs: `topUp` calls
///         `TaskManager.fund(jobId)` with `amount` of the ether it holds.
contract SelfFundingTarget {
    address public immutable taskManager;
    uint256 public topUps;

    constructor(address taskManager_) {
        taskManager = taskManager_;
    }

    /// @notice Funds job `jobId` with `amount` wei from this contract's balance.
    function topUp(uint256 jobId, uint256 amount) external {
        IJobFunding(taskManager).fund{value: amount}(jobId);
        topUps++;
    }

    receive() external payable {}
}
